"""Shared fixtures: a fake Messages API server and a workspace."""

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
