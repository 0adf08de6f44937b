// Interactive API docs, served with their assets from the installed package (no CDN: works air-gapped).
// The page itself holds nothing; the OpenAPI document and every call need an API key, asked for once and
// kept for this browser tab only.
(function () {
  const storageKey = "facegate-api-key";
  let key = sessionStorage.getItem(storageKey);

  function withKey(headers) {
    if (key && !headers["X-API-Key"] && !headers["Authorization"]) headers["X-API-Key"] = key;
    return headers;
  }

  async function load() {
    const response = await fetch("/openapi.json", { headers: withKey({}) });
    if (response.status === 401 || response.status === 403) {
      key = window.prompt("facegate API key (sent as X-API-Key):");
      if (!key) {
        document.getElementById("swagger-ui").textContent = "An API key is needed to read the API documentation.";
        return;
      }
      sessionStorage.setItem(storageKey, key);
      return load();
    }
    const spec = await response.json();
    window.ui = SwaggerUIBundle({
      spec: spec,
      dom_id: "#swagger-ui",
      deepLinking: true,
      presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
      layout: "BaseLayout",
      requestInterceptor: function (request) {
        request.headers = withKey(request.headers || {});
        return request;
      },
    });
  }

  load();
})();
