"""The client side: the `upflow` command, the resumable uploader, the HTTP API client,
the journal and progress. HTTP only: nothing here imports boto3."""
