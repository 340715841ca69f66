from . import test_connection_test
from . import test_delivery
from . import test_port_policy
from . import test_queue_security
from . import test_routing_config
from . import test_routing_send
from . import test_traffic
