"""The Label Studio side of lsclip: ``lsclip connect``, ``preannotate``, ``queue``, ``report``, ``sync``.

Built on label-studio-sdk (``LABEL_STUDIO_URL`` + ``LABEL_STUDIO_API_KEY``, a legacy token or a
personal access token) and on the backend's Redis (``REDIS_URL``, or the embedded one a running
``lsclip serve`` started).
"""
