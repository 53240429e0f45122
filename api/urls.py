"""Routes under /api/v1/: the visitor side, the staff side, the OpenAPI schema and its docs page."""

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

#: Swagger UI (from drf-spectacular-sidecar, served from static/) sets inline styles and draws its
#: icons as `data:` SVG images, which the staff pages' policy blocks. The docs page allows those
#: two things and nothing else: scripts still come from this origin only (the split view serves
#: its start-up script as a file, not inline).
_SWAGGER_CSP = {"style-src": [UNSAFE_INLINE], "img-src": ["data:"]}

app_name = "api"
urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", csp_update(_SWAGGER_CSP)(SpectacularSwaggerSplitView.as_view(url_name="api:schema")), name="docs"),
    path("", include("api.visitor.urls")),
    path("", include("api.staff.urls")),
]
