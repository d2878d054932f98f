"""The HTTP API: the documented wire contract over the service layer."""
