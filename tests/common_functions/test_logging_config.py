"""``dsg_lib.common_functions.logging_config.config_log``: loguru to a file, standard logging routed in."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from dsg_lib.common_functions.logging_config import config_log


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    # config_log(intercept) rewires every existing logger (handlers, propagate=False): put each back,
    # or later tests that read records through the root (caplog on older pytest) would see nothing
    root_handlers = logging.root.handlers[:]
    root_level = logging.root.level
    named = {
        name: (item.handlers[:], item.propagate)
        for name, item in logging.root.manager.loggerDict.items()
        if isinstance(item, logging.Logger)
    }
    yield
    logger.remove()
    logging.root.handlers = root_handlers
    logging.root.setLevel(root_level)
    for name, item in logging.root.manager.loggerDict.items():
        if isinstance(item, logging.Logger):
            item.handlers, item.propagate = named.get(name, ([], True))


def test_writes_the_level_and_above_to_the_file(tmp_path: Path) -> None:
    path = config_log(
        logging_directory=str(tmp_path),
        log_name="app.log",
        logging_level="warning",
        enqueue=False,
        intercept_standard_logging=False,
    )
    logger.info("quiet")
    logger.warning("loud")
    assert path == tmp_path / "app.log"
    text = path.read_text()
    assert "loud" in text and "quiet" not in text


def test_serialized_app_named_file(tmp_path: Path) -> None:
    path = config_log(
        logging_directory=str(tmp_path),
        log_name="svc",
        log_serializer=True,
        app_name="api",
        append_app_name=True,
        enqueue=False,
        intercept_standard_logging=False,
    )
    logger.info("structured")
    assert path.name == "svc_api.json"
    record = json.loads(path.read_text().splitlines()[0])["record"]
    assert record["message"] == "structured" and record["extra"]["app_name"] == "api"


def test_standard_logging_is_intercepted(tmp_path: Path) -> None:
    named = logging.getLogger("face.test.library")
    path = config_log(logging_directory=str(tmp_path), log_name="std", enqueue=False)
    named.warning("from the logging module")
    logging.getLogger("face.test.other").error("from a new logger")
    text = path.read_text()
    assert "from the logging module" in text and "from a new logger" in text
    assert text.count("from the logging module") == 1  # not once per handler


def test_bad_level_is_rejected_before_anything_changes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid logging level"):
        config_log(logging_directory=str(tmp_path), logging_level="LOUD")
    assert not any(tmp_path.iterdir())
