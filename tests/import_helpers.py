"""What a failed `import-model` must look like, shared by the importer error tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from pamlive.errors import ModelError
from pamlive.importers import import_model


def import_fails(source: str | Path, out: Path, *needles: str) -> str:
    """Importing ``source`` raises one line naming each of ``needles`` and leaves nothing
    behind: no package, no half-written temporary folder."""
    with pytest.raises(ModelError) as info:
        import_model(source, out)
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]
    return message
