"""Camera sources, one file each, registered by kind. `open_source("video:clip.mp4", ...)` picks the
source by the text before the colon; a new source is one file with a class decorated by
`@register_source("kind")` (see base.Source for the interface)."""

from device_sim.sources import folder, photo, synthetic, video  # noqa: F401 - registers the built-in sources
from device_sim.sources.base import (
    SOURCES,
    CorruptFrame,
    Source,
    SourceFailed,
    SourceSpec,
    open_source,
    register_source,
)

__all__ = ["Source", "SourceSpec", "SourceFailed", "CorruptFrame", "SOURCES", "register_source", "open_source"]
