"""Rater pages. Placeholder until the rater page lands."""

from django.http import HttpResponse


def home(request):
    return HttpResponse("Salon")


def compare(request, slug):
    return HttpResponse(status=501)


def next_pair(request, slug):
    return HttpResponse(status=501)


def vote(request, slug):
    return HttpResponse(status=501)


def join(request, token):
    return HttpResponse(status=501)
