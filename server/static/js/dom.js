// DOM helpers. Every piece of text goes in through textContent or a property, never as
// markup, so a project name or marker label like `<img src=x onerror=...>` stays text.

/**
 * Create an element. `props`: {class, text, title, attrs: {name: value}, on: {event: fn}, ...}
 * where any other key is set as a property (value, type, disabled, hidden, ...).
 */
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "attrs") for (const [name, v] of Object.entries(value)) node.setAttribute(name, v);
    else if (key === "on") for (const [event, fn] of Object.entries(value)) node.addEventListener(event, fn);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node[key] = value;
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (node === null) throw new Error(`missing element ${selector}`);
  return node;
}
