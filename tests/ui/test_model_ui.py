"""The timeline model (timeline-model.js) run in the browser: edits, undo/redo, unknown keys kept."""

from __future__ import annotations

from tests.ui.conftest import base_url

SCRIPT = """async () => {
    const { TimelineModel } = await import("/static/js/timeline-model.js");
    const model = new TimelineModel({ currentTime: 1, zoom: 2, markers: [], edits: [], colour: "teal" }, 10);
    const seen = [];
    model.addEventListener("change", (e) => seen.push(e.detail.kind));
    model.addMarker(4, "b");
    model.addMarker(2, "a");
    model.renameMarker(0, "first");
    model.setTrim(1, 9);
    model.setTrim(8, 2);                      // handles dragged past each other
    model.addCut(3, 4);
    model.addSplit(5);
    const repeatedSplit = model.addSplit(5);  // the same split twice is refused
    model.setEffect("speed", { factor: 2 });
    model.setEffect("speed", { factor: 1.5 }); // replaces, one speed edit
    model.setView({ currentTime: 3 });
    const full = model.toJSON();
    model.undo(); model.undo();
    const undone = model.toJSON().edits.map((e) => e.type);
    model.redo();
    const redone = model.toJSON().edits.map((e) => e.type);
    model.setTrim(0, 10);                     // the whole source: no trim edit
    return { full, undone, redone, repeatedSplit, afterWhole: model.toJSON().edits.map((e) => e.type),
             seen: [...new Set(seen)], canRedo: model.canRedo };
}"""


async def test_model_edits_and_history(server, open_page):
    page, _ = await open_page(base_url(server))
    await page.goto("/static/css/app.css")  # any page of the origin; the editor's own start-up is not wanted
    result = await page.evaluate(SCRIPT)
    full = result["full"]
    assert full["colour"] == "teal" and full["zoom"] == 2 and full["currentTime"] == 3
    assert full["markers"] == [{"time": 2, "label": "first"}, {"time": 4, "label": "b"}]
    assert full["edits"] == [{"type": "trim", "start": 2, "end": 8}, {"type": "cut", "start": 3, "end": 4},
                             {"type": "split", "at": 5}, {"type": "speed", "factor": 1.5}]
    assert result["repeatedSplit"] is False
    assert result["undone"] == ["trim", "cut", "split"]
    assert result["redone"] == ["trim", "cut", "split", "speed"]
    assert result["afterWhole"] == ["cut", "split", "speed"]
    assert result["canRedo"] is False  # a new edit drops what could be redone
    assert set(result["seen"]) == {"change", "view"}


JOBS_SCRIPT = """async () => {
    localStorage.clear();
    const { JobsPanel } = await import("/static/js/jobs.js");
    const list = document.createElement("ul");
    document.body.append(list);
    const panel = new JobsPanel(list, document.createElement("p"));
    const result = { filename: "trim-1.mp4", url: "/videos/trim-1.mp4", duration: 1 };
    for (let i = 0; i < 300; i++) {  // other tabs' operations: remembered only up to a bound
        panel.handle({ type: "progress", data: { operationId: `other-${i}`, operation: "trim", progress: 1 } });
    }
    const boundedTo = panel.unclaimed.size;
    const oldestForgotten = !panel.unclaimed.has("other-0");
    // A short job finishes before the POST that started it has answered with its id.
    panel.handle({ type: "progress", data: { operationId: "trim-1", operation: "trim", progress: 40 } });
    panel.handle({ type: "progress", data: { operationId: "trim-1", operation: "trim", progress: 100 } });
    panel.handle({ type: "complete", data: { operationId: "trim-1", result } });
    panel.track({ operationId: "other-299", operation: "trim", title: "Late" });
    panel.track({ operationId: "trim-1", operation: "trim", title: "Quick" });
    const row = list.querySelector('[data-operation-id="trim-1"]');
    return { status: row.dataset.status, boundedTo, oldestForgotten, late: list.querySelector('[data-operation-id="other-299"]').dataset.status };
}"""


async def test_jobs_panel_replays_messages_that_came_before_the_job_id(server, open_page):
    page, _ = await open_page(base_url(server))
    await page.goto("/static/css/app.css")
    outcome = await page.evaluate(JOBS_SCRIPT)
    assert outcome["status"] == "done"
    assert outcome["boundedTo"] == 200 and outcome["oldestForgotten"]
    assert outcome["late"] == "running"
