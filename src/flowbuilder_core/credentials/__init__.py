"""Credentials: the secrets that workflow nodes use. Values go in and never come out of the API."""
