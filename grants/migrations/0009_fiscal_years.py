"""Fiscal years (issue 15.2, 15.4): closing a programme's year with carry-over (结转) and lapse (结余), the
programme's carry-over rules, the closed-through marks every movement checks under its lock, the allotments'
carried and lapsed counters with the CHECK constraint behind them, and the ledger kinds that justify them."""

import django.core.validators
import grants.money
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("grants", "0008_maker_checker")]

    operations: list[migrations.operations.base.Operation] = [
        migrations.AddField(
            model_name="programme",
            name="carry_over_years",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="0: every unspent balance lapses when its year is closed.",
                validators=[django.core.validators.MaxValueValidator(10)],
                verbose_name="carry unspent allotments over for (years)",
            ),
        ),
        migrations.AddField(
            model_name="programme",
            name="carry_over_max_rate",
            field=models.DecimalField(
                blank=True,
                decimal_places=4,
                help_text="Empty: no limit in amount. 0.50 carries at most half of a pool's allotment of the year.",
                max_digits=5,
                null=True,
                validators=[
                    django.core.validators.MinValueValidator(0),
                    django.core.validators.MaxValueValidator(1),
                ],
                verbose_name="carry over at most (share of the year's allotment)",
            ),
        ),
        migrations.AddField(
            model_name="programme",
            name="unpaid_tranches",
            field=models.CharField(
                choices=[("reschedule", "rescheduled into the next year"), ("decommit", "de-committed")],
                default="reschedule",
                max_length=10,
                verbose_name="tranches unpaid when their year is closed are",
            ),
        ),
        migrations.AddField(
            model_name="programme",
            name="closed_through",
            field=models.PositiveSmallIntegerField(
                editable=False, null=True, verbose_name="closed through fiscal year"
            ),
        ),
        migrations.AddConstraint(
            model_name="programme",
            constraint=models.CheckConstraint(
                condition=models.Q(carry_over_max_rate__isnull=True)
                | models.Q(carry_over_max_rate__gte=0, carry_over_max_rate__lte=1),
                name="programme_carry_over_rate_within",
            ),
        ),
        migrations.AddField(
            model_name="fundingpool",
            name="closed_through",
            field=models.PositiveSmallIntegerField(
                editable=False, null=True, verbose_name="closed through fiscal year"
            ),
        ),
        migrations.AddField(
            model_name="fiscalyearallotment",
            name="carried_in",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, editable=False, max_digits=18, verbose_name="carried in"
            ),
        ),
        migrations.AddField(
            model_name="fiscalyearallotment",
            name="carried_out",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, editable=False, max_digits=18, verbose_name="carried out"
            ),
        ),
        migrations.AddField(
            model_name="fiscalyearallotment",
            name="lapsed",
            field=grants.money.MoneyField(
                decimal_places=2, default=0, editable=False, max_digits=18, verbose_name="lapsed"
            ),
        ),
        # Carried-in money may be committed beyond the year's own amount: the two limits by the amount alone give
        # way to one by what the year had (amount + carried in).
        migrations.RemoveConstraint(
            model_name="fiscalyearallotment", name="allotment_committed_within_amount"
        ),
        migrations.RemoveConstraint(
            model_name="fiscalyearallotment", name="allotment_reserved_within_amount"
        ),
        migrations.AddConstraint(
            model_name="fiscalyearallotment",
            constraint=models.CheckConstraint(
                condition=models.Q(carried_in__gte=0, carried_out__gte=0, lapsed__gte=0),
                name="allotment_carried_not_negative",
            ),
        ),
        migrations.AddConstraint(
            model_name="fiscalyearallotment",
            constraint=models.CheckConstraint(
                condition=models.Q(reserved__gte=0)
                & models.Q(
                    amount__gte=models.F("committed")
                    + models.F("reserved")
                    + models.F("carried_out")
                    + models.F("lapsed")
                    - models.F("carried_in")
                ),
                name="allotment_taken_within_spendable",
            ),
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="origin_year",
            field=models.PositiveSmallIntegerField(
                blank=True, null=True, verbose_name="allotted for fiscal year"
            ),
        ),
        migrations.AlterField(
            model_name="ledgerentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("commit", "commit"),
                    ("decommit", "de-commit"),
                    ("disburse", "disburse"),
                    ("recover", "recover"),
                    ("reserve", "reserve"),
                    ("release", "release"),
                    ("carry_out", "carry over (out)"),
                    ("carry_in", "carry over (in)"),
                    ("lapse", "lapse"),
                ],
                max_length=10,
                verbose_name="kind",
            ),
        ),
    ]
