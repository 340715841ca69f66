from . import mail_outbound_connection_test
from . import mail_outbound_connection_test_line
from . import mail_outbound_routing_preview
from . import mail_outbound_routing_preview_dmarc
from . import mail_outbound_connection_test_dmarc
