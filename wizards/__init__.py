from . import mail_outbound_connection_test
from . import mail_outbound_connection_test_line
from . import mail_outbound_routing_preview
