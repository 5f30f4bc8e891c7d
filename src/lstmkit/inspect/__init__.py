"""See inside a trained recurrent model: traces of gates and states, analyses, and the HTML report.

    tr = lk.inspect.trace(model, x)          # per layer (and direction): gates and states as (B, T, H) arrays
    lk.inspect.charlm_report(model, vocab, text, "report.html")
"""

from . import analysis
from .report import InspectError, charlm_report
from .trace import Trace, recurrent_layers, trace

__all__ = ["Trace", "recurrent_layers", "trace", "analysis", "charlm_report", "InspectError"]
