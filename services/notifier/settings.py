from pydantic import field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from common.identifiers import InvalidIdentifier, validate_credit_code
from common.settings import ServiceSettings

# The IT office of the demo directory (`python -m services.directory.cli demo`), for development only.
DEMO_IT_OFFICE_CODE = "11360800MB0000002D"


class NotifierSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore", frozen=True)

    http_port: int = 8003
    # The IT office (市信息化工作办公室), as registered in the directory: it hears of disputes.
    it_office_code: str = DEMO_IT_OFFICE_CODE

    @field_validator("it_office_code")
    @classmethod
    def _credit_code(cls, value: str) -> str:
        try:
            return validate_credit_code(value)
        except InvalidIdentifier as exc:
            raise ValueError(f"the IT office's unified social credit code: {exc}") from None

    @model_validator(mode="after")
    def _office_in_production(self) -> "NotifierSettings":
        if self.environment == "production" and self.it_office_code == DEMO_IT_OFFICE_CODE:
            raise ValueError(
                "it_office_code: production needs NOTIFIER_IT_OFFICE_CODE, the IT office's unified social credit "
                "code as registered in the directory (the default is the demo directory's)"
            )
        return self
