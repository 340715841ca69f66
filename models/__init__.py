from . import ir_mail_server
from . import ir_mail_server_health
from . import mail_alias_domain
from . import mail_delivery_log
from . import mail_mail
from . import mail_outbound_provider_preset
from . import res_config_settings
