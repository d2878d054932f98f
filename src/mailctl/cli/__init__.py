"""The command line: the same use cases as the API, for the admin on the mail host."""
