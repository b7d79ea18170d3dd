"""The applicant portal, mounted at the site root inside i18n_patterns (so /zh-hans/... is Chinese)."""

from django.urls import URLPattern, URLResolver, path

from grants.portal.views import accounts, applications, awards, notices, privacy, vouchers

app_name = "portal"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", accounts.home, name="home"),
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", accounts.LogoutView.as_view(), name="logout"),
    path("password-reset/", accounts.PasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", accounts.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        accounts.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/", accounts.PasswordResetCompleteView.as_view(), name="password_reset_complete"
    ),
    path("privacy/", privacy.privacy, name="privacy"),
    path("notices/", notices.notices, name="notifications"),
    path("notices/preferences/", notices.preferences, name="notification_preferences"),
    path("notices/<int:pk>/", notices.notice_open, name="notification"),
    path("notices/<int:pk>/read/", notices.notice_read, name="notification_read"),
    path("institutions/new/", accounts.institution_create, name="institution_create"),
    path("institutions/<int:pk>/", accounts.institution, name="institution"),
    path("institutions/<int:pk>/edit/", accounts.institution_edit, name="institution_edit"),
    path("institutions/<int:pk>/members/", accounts.institution_add_member, name="institution_add_member"),
    path(
        "institutions/<int:pk>/relations/", accounts.institution_relation_add, name="institution_relation_add"
    ),
    path(
        "institutions/<int:pk>/relations/<int:relation_pk>/remove/",
        accounts.institution_relation_remove,
        name="institution_relation_remove",
    ),
    path("calls/", applications.calls, name="calls"),
    path("calls/<int:pk>/", applications.call_detail, name="call"),
    path("calls/<int:pool_pk>/apply/", applications.application_create, name="application_create"),
    path("applications/", applications.applications, name="applications"),
    path("applications/<int:pk>/", applications.application_detail, name="application"),
    path("applications/<int:pk>/edit/", applications.application_edit, name="application_edit"),
    path("applications/<int:pk>/delete/", applications.application_delete, name="application_delete"),
    path("applications/<int:pk>/submit/", applications.application_submit, name="application_submit"),
    path("applications/<int:pk>/withdraw/", applications.application_withdraw, name="application_withdraw"),
    path("applications/<int:pk>/attachments/", applications.attachment_add, name="attachment_add"),
    path(
        "applications/<int:pk>/attachments/<int:attachment_pk>/",
        applications.attachment_download,
        name="attachment",
    ),
    path(
        "applications/<int:pk>/attachments/<int:attachment_pk>/remove/",
        applications.attachment_remove,
        name="attachment_remove",
    ),
    path(
        "applications/<int:pk>/tranches/<int:tranche_pk>/report/",
        applications.milestone_report,
        name="milestone_report",
    ),
    path(
        "applications/<int:pk>/milestone-reports/<int:report_pk>/file/",
        applications.milestone_file,
        name="milestone_file",
    ),
    path("applications/<int:pk>/agreement.pdf", awards.agreement_pdf, name="agreement_pdf"),
    path("applications/<int:pk>/agreement/", awards.agreement_accept, name="agreement"),
    path("applications/<int:pk>/reports/<int:duty_pk>/", awards.report, name="report"),
    path(
        "applications/<int:pk>/reports/<int:duty_pk>/files/<int:attachment_pk>/",
        awards.report_file,
        name="report_file",
    ),
    path("vouchers/", vouchers.voucher_list, name="vouchers"),
    path("vouchers/verify/", vouchers.voucher_verify, name="voucher_verify"),
    path("vouchers/<int:pk>/", vouchers.voucher_detail, name="voucher"),
    path("vouchers/<int:pk>/print/", vouchers.voucher_print, name="voucher_print"),
    path("vouchers/<int:pk>/claim/", vouchers.voucher_claim, name="voucher_claim"),
    path("claims/<int:claim_pk>/", vouchers.claim_detail, name="claim"),
    path("claims/<int:claim_pk>/invoice/", vouchers.claim_invoice, name="claim_invoice"),
    path("claims/<int:claim_pk>/payment-proof/", vouchers.claim_payment_proof, name="claim_payment_proof"),
    path("provider/claims/", vouchers.provider_claims, name="provider_claims"),
    path("provider/claims/new/", vouchers.provider_claim, name="provider_claim"),
    path("provider/statement/", vouchers.provider_statement, name="provider_statement"),
]
