"""Image reconstruction: filtered backprojection and Poisson EM (MLEM / OSEM).

Every function runs on the backend of its operators and arrays and keeps the iterations on
the device; the only host synchronisation is the float returned by
:func:`poisson_log_likelihood`.
"""

from imagingsim.recon.em import mlem, osem, poisson_log_likelihood
from imagingsim.recon.fbp import fbp, ramp_filter

__all__ = ["fbp", "mlem", "osem", "poisson_log_likelihood", "ramp_filter"]
