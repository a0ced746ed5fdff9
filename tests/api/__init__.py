"""Tests of the HTTP API and the `execution-engine` command line."""
