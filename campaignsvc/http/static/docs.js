// Starts Swagger UI on /docs over the service's own /openapi.json. See campaignsvc/http/docs.py.
"use strict";

const params = new URLSearchParams(window.location.search);
// The Authorize dialog's schemes (components.securitySchemes of /openapi.json), filled from ?org=&user=&role=
// as the dashboard takes them; behind the gateway the headers are added to every call anyway.
const FROM_QUERY = { org: "OrganizationId", user: "UserId", role: "UserRole" };

window.addEventListener("load", () => {
  if (params.get("org")) {
    const dashboard = document.getElementById("dashboard-link");
    dashboard.href = `/dashboard${window.location.search}`;
  }
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null, // no badge fetched from elsewhere
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    persistAuthorization: true,
    onComplete: () => {
      for (const [param, scheme] of Object.entries(FROM_QUERY)) {
        const value = params.get(param);
        if (value) window.ui.preauthorizeApiKey(scheme, value);
      }
      document.body.dataset.ready = "true";
    },
  });
});
