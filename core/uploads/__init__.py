"""Uploads, with no HTTP in them: the resumable (tus) store, the storing of a finished upload
as a video of the media directory, and the progress an upload publishes.

server/handlers/uploads.py (multipart) and server/handlers/tus.py (tus 1.0) speak HTTP and
hand what arrived to :class:`core.uploads.store.UploadStore`.
"""
