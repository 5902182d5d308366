"""The console's tests use the API's fixtures: the API (with the console at /console) served
in-process in front of the session's real restate-server and gateway endpoint."""

from tests.api.conftest import api_config_file, api_url, http

__all__ = ["api_config_file", "api_url", "http"]

