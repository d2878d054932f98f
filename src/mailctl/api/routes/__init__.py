"""One router per resource of the documented API."""
