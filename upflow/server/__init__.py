"""The server side shared by the API and the processor: the upload service, the
state machines and the wiring of the AWS adapters."""
