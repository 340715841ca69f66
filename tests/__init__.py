from . import test_port_policy
from . import test_routing_config
