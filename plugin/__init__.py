"""Label Studio-side tooling (label-studio-sdk): connect, bulk pre-annotation, queues, reports."""
