/* priorlib: let saved ipywidgets render offline.
 *
 * Loaded between the local require.js and the local @jupyter-widgets/html-manager embed-amd.js
 * (see nb_ipywidgets_js in _config.yml). It
 *  - points the widget manager's assets (fonts) and require.js at _static/vendor/ instead of a CDN,
 *  - gives MathJax 3 the MathJax.Hub.Queue that html-manager 1.x still calls (MathJax 2 API),
 *  - asks FontAwesome to nest its SVGs instead of replacing <i> tags, which breaks the Play widget.
 */
(function () {
  "use strict";
  var here = (document.currentScript && document.currentScript.src) || "";
  var staticBase = here.replace(/[^\/]*$/, ""); // .../_static/
  var vendor = staticBase + "vendor/";

  window.__jupyter_widgets_assets_path__ = vendor + "html-manager/";
  if (window.requirejs && window.requirejs.config) {
    // the widget CSS loads its fonts relative to each module's URL, so map the modules that
    // embed-amd.js defines onto the folder that holds those fonts; anything else would be looked
    // up under vendor/ and fail locally instead of reaching for a CDN
    window.requirejs.config({
      baseUrl: vendor,
      paths: {
        "@jupyter-widgets": "html-manager",
        "@jupyter-widgets/html-manager/dist": "html-manager",
      },
    });
  }

  window.FontAwesomeConfig = Object.assign(window.FontAwesomeConfig || {}, {
    autoReplaceSvg: "nest",
  });

  // --- MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]) -> MathJax 3 typesetPromise
  function typeset(element) {
    var mj = window.MathJax;
    if (!mj || typeof mj.typesetPromise !== "function") {
      return; // not loaded yet: MathJax's own start-up pass typesets the whole page
    }
    var ready = (mj.startup && mj.startup.promise) || Promise.resolve();
    ready
      .then(function () {
        return mj.typesetPromise(element ? [element] : undefined);
      })
      .catch(function (err) {
        console.warn("priorlib: MathJax typeset of a widget failed", err);
      });
  }
  var hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset") {
          typeset(job[2]);
        } else if (typeof job === "function") {
          try { job(); } catch (err) { console.warn(err); }
        }
      }
    },
  };
  function addHub(mj) {
    if (mj && typeof mj === "object" && !mj.Hub) {
      // not enumerable, so MathJax 3 does not read it as configuration
      Object.defineProperty(mj, "Hub", { value: hub, configurable: true, writable: true });
    }
  }
  // MathJax 3 replaces window.MathJax (the configuration object) when it loads, possibly after
  // this script (Sphinx loads it async/defer): keep the shim on whatever object is assigned.
  var current = window.MathJax;
  addHub(current);
  try {
    Object.defineProperty(window, "MathJax", {
      configurable: true,
      enumerable: true,
      get: function () { return current; },
      set: function (value) { current = value; addHub(value); },
    });
  } catch (err) {
    addHub(window.MathJax);
  }
})();
