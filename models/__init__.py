# first: the models below inherit it
from . import mail_outbound_input_guard

from . import ir_actions_act_window
from . import ir_config_parameter
from . import ir_mail_server
from . import ir_mail_server_circuit
from . import ir_mail_server_dkim
from . import ir_mail_server_health
from . import ir_mail_server_lanes
from . import ir_mail_server_limits
from . import ir_mail_server_send
from . import ir_module_module
from . import mail_alias_domain
from . import mail_delivery_event
from . import mail_delivery_log
from . import mail_mail
from . import mail_mail_delivery
from . import mail_mail_dmarc
from . import mail_mail_limits
from . import mail_mail_queue
from . import mail_mail_send

# after the queue's own mail.mail overrides: it hands a swallowed refusal on
# to them, so it must run first (outermost)
from . import mail_mail_coexistence

from . import mail_notification
from . import mail_outbound_dkim_key
from . import mail_outbound_dmarc_policy
from . import mail_outbound_domain_check
from . import mail_outbound_handover
from . import mail_outbound_provider_preset
from . import mail_outbound_queue
from . import mail_outbound_queue_claims
from . import mail_outbound_queue_prepare
from . import mail_outbound_queue_results
from . import mail_outbound_sending_address
from . import mail_thread
from . import res_config_settings
from . import res_config_settings_readiness
