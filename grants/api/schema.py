"""OpenAPI details drf-spectacular cannot infer: the token scheme, action views' bodies, and the error responses
every operation can give (all in the one error shape)."""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_bearer_security_scheme_object

from grants.api.serializers import ErrorSerializer

ERROR_STATUSES = {
    "400": "Invalid input (the `fields` say which), or a domain rule refused it.",
    "401": "Not authenticated: send `Authorization: Bearer <token>` or a session cookie.",
    "403": "Authenticated, but the role may not do this here.",
    "404": "No such object in your scope.",
    "405": "Method not allowed.",
    "406": "Not acceptable.",
    "409": "Refused by the budget or the workflow (details name the level, asked and left), or a conflict.",
    "413": "Request body too large.",
    "415": "Unsupported media type.",
    "422": (
        "Idempotency-Key reused with a different request; or a voucher claim refused on its checks "
        "(`claim_refused`, every failed check in `details`), or a bulk issue refused (`bulk_refused`, every bad row)."
    ),
    "429": "Throttled: retry after `Retry-After` seconds.",
}


class TokenScheme(OpenApiAuthenticationExtension):
    target_class = "grants.api.authentication.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix="Bearer")  # noqa: S106 (a scheme name)


class GrantsAutoSchema(AutoSchema):
    def get_request_serializer(self) -> Any:
        input_serializer = getattr(self.view, "input_serializer", None)
        if self.method == "POST" and input_serializer is not None:
            return input_serializer
        return super().get_request_serializer()

    def get_response_serializers(self) -> Any:
        output = getattr(self.view, "output_serializer", None)
        if self.method == "POST" and output is not None:
            return {getattr(self.view, "success_status", 200): output}
        return super().get_response_serializers()

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        for code, description in ERROR_STATUSES.items():
            if code not in responses:
                response = self._get_response_for_code(
                    ErrorSerializer, code, ("application/json",), direction
                )
                response["description"] = description
                responses[code] = response
        return responses
