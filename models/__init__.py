from . import ir_mail_server
from . import ir_mail_server_dkim
from . import mail_alias_domain
from . import mail_delivery_log
from . import mail_mail
from . import mail_outbound_dkim_key
from . import mail_outbound_domain_check
from . import res_config_settings
