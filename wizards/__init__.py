from . import mail_outbound_routing_preview
