"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from openai_stub import Stub


@pytest.fixture(scope="session")
def _stub_server() -> Iterator[Stub]:
    from openai_stub import Stub, StubState, serve  # fastapi + uvicorn: only for tests that ask

    state = StubState()
    with serve(state) as url:
        yield Stub(url, state)


@pytest.fixture
def stub(_stub_server: Stub) -> Stub:
    """The OpenAI-compatible test stub on 127.0.0.1, its knobs and records reset for this test."""
    _stub_server.state.reset()
    return _stub_server
