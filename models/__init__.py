from . import ir_config_parameter
from . import ir_mail_server
from . import mail_alias_domain
from . import mail_delivery_log
from . import mail_mail
from . import res_config_settings
