"""Shared fixtures: a fake Messages API server, a workspace, Ctrl-C as KeyboardInterrupt."""

import signal

import bgagent
import pytest
from messages_server import MessagesServer


@pytest.fixture
def server():
    with MessagesServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    return bgagent.Client(base_url=server.url, api_key="test-key", max_retries=2)


@pytest.fixture
def agent(client, tmp_path):
    manager = bgagent.BackgroundManager(tmp_path, grace=0.3)
    yield bgagent.Agent(model="test-model", client=client, workdir=tmp_path, manager=manager)
    manager.shutdown()


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt during the test, even if pytest inherited it ignored (as
    a command a shell starts in the background does)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
