from . import test_routing_config
