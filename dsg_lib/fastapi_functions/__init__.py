"""devsetgo-lib's ``fastapi_functions`` path: ``default_endpoints`` and ``system_health_endpoints``.

Needs the ``fastapi`` extra (``pip install dsg-lib[fastapi]``).

Examples:
    >>> from dsg_lib.fastapi_functions import default_endpoints, system_health_endpoints
    >>> default_endpoints.create_default_router([]).routes[0].path
    '/robots.txt'
"""

from . import default_endpoints as default_endpoints
from . import system_health_endpoints as system_health_endpoints

__all__ = ["default_endpoints", "system_health_endpoints"]
