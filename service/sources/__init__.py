"""Where data come from: one module per source, registered by name (:mod:`.registry`).

Frame sources (:class:`.base.FrameSource`) list and fetch H-alpha frames and read them into
:class:`~service.science.frame.HalphaFrame`; magnetogram sources
(:class:`.magnetograms.base.MagnetogramSource`) find real magnetograms. Importing this
package registers the built-in ones; a new source is a module with a registered class.
"""

from service.sources.gong import archive as _gong  # noqa: F401  (registers "gong")
from service.sources.magnetograms import folder as _folder  # noqa: F401  (registers "dir")
from service.sources.magnetograms import jsoc as _jsoc  # noqa: F401  (registers "jsoc")
from service.sources.magnetograms import replay as _replay  # noqa: F401  (registers "replay")
