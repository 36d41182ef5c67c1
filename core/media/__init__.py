"""Media operations on files: probe, trim, split, render, filmstrip, waveform.

Every operation is a plain blocking function meant to run in a worker process (never on
the server's event loop). Long ones take a ``progress(fraction, message)`` callback, where
``fraction`` runs from 0.0 to 1.0 of the OUTPUT, and a ``should_cancel()`` predicate that
is checked per frame or packet; they raise :class:`core.media.errors.Cancelled` when it
turns true and never leave a partial output file behind.
"""
