"""The client fixtures (``tests/client/conftest.py``) against a deployment that has LaneSettlement
(the parent conftest's ``local_params`` sets ``laneCloseDelay``)."""

from tests.client.conftest import fresh, funded, kenv  # noqa: F401 - fixtures registered by import
