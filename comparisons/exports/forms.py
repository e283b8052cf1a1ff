"""The export form on the researchers' export page."""

from django import forms
from django.utils.translation import gettext_lazy as _

from comparisons.exports.options import FORMATS, ExportOptions
from comparisons.models import Cohort
from taste_site.conf import salon_settings


class ExportForm(forms.Form):
    cohorts = forms.ModelMultipleChoiceField(
        label=_("Cohorts"), queryset=Cohort.objects.order_by("name"), to_field_name="slug",
        widget=forms.CheckboxSelectMultiple,
    )
    since = forms.DateTimeField(
        label=_("Answered from (UTC)"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        help_text=_("Included. Leave empty for the first judgment."),
    )
    until = forms.DateTimeField(
        label=_("Answered before (UTC)"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}),
        help_text=_("Excluded. Leave empty for now."),
    )
    format = forms.ChoiceField(
        label=_("Format"), choices=[(name, name) for name in FORMATS], initial="csv",
        help_text=_("Parquet is always prepared in the background."),
    )
    include_simulated = forms.BooleanField(label=_("Include simulated raters"), required=False)
    ties = forms.BooleanField(label=_("Include ties"), required=False, initial=True)
    skips = forms.BooleanField(label=_("Include skips"), required=False, initial=True)
    features = forms.BooleanField(label=_("Add clip features and embeddings"), required=False)
    scores = forms.BooleanField(label=_("Add taste-model scores"), required=False)
    backbone = forms.CharField(
        label=_("Backbone"), required=False, max_length=200,
        help_text=_("For features and scores, such as handcrafted:v1. Empty: each cohort's active taste model's."),
    )
    platform_ids = forms.BooleanField(
        label=_("Add recruitment-platform ids"), required=False,
        help_text=_("Participant, study and session ids identify people: only when the study needs them."),
    )
    licence = forms.CharField(label=_("Licence"), required=False, max_length=300)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Read at form creation, not import, so a changed setting applies at once.
        self.fields["licence"].initial = salon_settings.EXPORT_LICENCE

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since >= until:
            raise forms.ValidationError(
                _("The time range is empty: %(since)s is not before %(until)s."),
                params={"since": since.isoformat(), "until": until.isoformat()}, code="empty_range",
            )
        return cleaned

    def to_options(self):
        data = self.cleaned_data
        # Keep the order the cohorts were submitted in; the queryset sorts by name.
        submitted = self.data.getlist("cohorts") if hasattr(self.data, "getlist") else []
        slugs = sorted(
            (cohort.slug for cohort in data["cohorts"]),
            key=lambda slug: submitted.index(slug) if slug in submitted else len(submitted),
        )
        return ExportOptions(
            cohorts=slugs,
            format=data["format"],
            since=data.get("since"),
            until=data.get("until"),
            include_simulated=data["include_simulated"],
            ties=data["ties"],
            skips=data["skips"],
            features=data["features"],
            scores=data["scores"],
            platform_ids=data["platform_ids"],
            backbone=data.get("backbone", "").strip(),
            licence=data.get("licence", ""),
        )
