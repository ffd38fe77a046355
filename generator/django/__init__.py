"""Django: add "generator.django" to INSTALLED_APPS, then `{% load segment_pendo %}{% segment_pendo_tag %}`.

Settings: SEGMENT_PENDO_BUILD (the folder `segment-pendo build --out` wrote) and SEGMENT_PENDO_PREFIX (the URL
that folder is served under; default STATIC_URL + "segment-pendo/"). The nonce is the tag's `nonce=` argument,
else `request.csp_nonce` (as django-csp and Django's own CSP support set it).
"""
