// Starts Swagger UI on /docs; kept in a file because the CSP allows no inline script.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: root.dataset.openapiUrl, domNode: root, deepLinking: true });
