"""Messages of the services (and the credit-code validator) that the portal shows to applicants.

They are raised by code outside the portal, so `makemessages` run in the portal would not find them; listing them
here puts them in the portal's catalogue, and the applicant reads them in Chinese even where the project catalogue
has no translation yet (the project catalogue, when it has one, takes precedence). A test checks that every string
here still occurs, word for word, in the code that raises it.
"""

from django.utils.translation import gettext_noop

SERVICE_MESSAGES = (
    # grants/validators.py
    gettext_noop(
        "%(value)s is not a valid unified social credit code (18 characters with a correct check character)."
    ),
    # grants/services/institutions.py
    gettext_noop(
        "This credit code cannot be registered. If your institution is already registered, ask one of "
        "its members to add you."
    ),
    gettext_noop("Cannot be registered."),
    gettext_noop("Choose a type from the list."),
    gettext_noop("A name is required."),
    gettext_noop("Only the names and the founding date can be changed."),
    gettext_noop("Only a managing member can add members."),
    # grants/services/applications.py
    gettext_noop("Only members of the institution may do this."),
    gettext_noop("Some fields are not valid."),
    gettext_noop("Enter an amount in yuan, e.g. 1250000.00."),
    gettext_noop("The amount must be more than zero."),
    gettext_noop("The duration is a whole number of years, at least 1."),
    gettext_noop("A title is required."),
    gettext_noop("Enter a date."),
    gettext_noop("Only a draft can be edited; this application is %(s)s."),
    gettext_noop("Only a draft that was never submitted can be deleted; withdraw it instead."),
    gettext_noop("This call is not open for applications now."),
    gettext_noop("Institutions of this type are not eligible for this call."),
    gettext_noop("The institution must be registered in this city."),
    gettext_noop("The institution is debarred until %(d)s."),
    gettext_noop("At most %(rate)s%% of the eligible cost may be requested: %(max)s."),
    gettext_noop("At most %(max)s may be requested per award."),
    gettext_noop("The duration must be between %(lo)d and %(hi)d years."),
    gettext_noop("The institution already has an open application to this pool."),
    # grants/errors.py
    gettext_noop("The application does not meet %(n)d eligibility rule(s)."),
    gettext_noop("A %(kind)s that is %(current)s cannot become %(target)s."),
    # grants/services/payments.py
    gettext_noop("Describe the milestone reached."),
    gettext_noop("Required."),
    gettext_noop("This tranche does not need a milestone report."),
    gettext_noop("This tranche is %(s)s; no report is needed."),
    gettext_noop("A report for this tranche is already waiting for a decision or accepted."),
    # grants/services/attachments.py
    gettext_noop("The file is empty."),
    gettext_noop("The file is larger than the limit of %(mb)s MB."),
    gettext_noop(
        "Only PDF files, images (PNG, JPEG, GIF, WebP) and spreadsheets (XLSX, XLS, ODS) are accepted."
    ),
    gettext_noop("The file's content does not match its name: a file named .%(ext)s must be %(expected)s."),
    gettext_noop("The file's name must end in one of %(exts)s, matching its content."),
    gettext_noop("Attachments can be changed only while the application is a draft or returned for changes."),
    # grants/models.py: the states, types and categories the portal displays
    gettext_noop("draft"),
    gettext_noop("submitted"),
    gettext_noop("under review"),
    gettext_noop("returned for changes"),
    gettext_noop("approved"),
    gettext_noop("rejected"),
    gettext_noop("withdrawn"),
    gettext_noop("active"),
    gettext_noop("suspended"),
    gettext_noop("completed"),
    gettext_noop("terminated"),
    gettext_noop("planned"),
    gettext_noop("payable"),
    gettext_noop("paid"),
    gettext_noop("withheld"),
    gettext_noop("cancelled"),
    gettext_noop("accepted"),
    gettext_noop("startup"),
    gettext_noop("small or medium enterprise"),
    gettext_noop("large enterprise"),
    gettext_noop("university"),
    gettext_noop("research institute"),
    gettext_noop("other"),
    gettext_noop("computing power"),
    gettext_noop("AI models"),
    gettext_noop("training data"),
    gettext_noop("research institutions"),
)
