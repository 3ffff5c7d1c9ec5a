// geoctl dashboard: refreshes the page's content in place, keeps the range in the URL, and, when
// the server wants a bearer token, asks for it once and keeps it in this tab's session storage.
// Served as a file: the Content-Security-Policy allows no inline script.
'use strict';
(function () {
  var body = document.body;
  var auth = body.dataset.auth || '';
  var every = Number(body.dataset.refresh || 0) * 1000;
  var KEY = 'geoctl-dashboard-token';
  var busy = false;

  // A blocked script, style or image would otherwise pass silently: say it where tests look.
  document.addEventListener('securitypolicyviolation', function (e) {
    console.error('Content-Security-Policy blocked ' + e.violatedDirective + ': ' + e.blockedURI);
  });

  function token() { return sessionStorage.getItem(KEY); }

  function headers() {
    return auth === 'bearer' && token() ? { Authorization: 'Bearer ' + token() } : {};
  }

  function say(text) { document.getElementById('refresh-state').textContent = text; }

  function content() { return document.getElementById('content'); }

  function contentUrl() {
    var url = new URL(location.href);
    url.searchParams.set('fragment', '1');
    return url.pathname + url.search;
  }

  // Images behind the token cannot be plain <img src>: fetch them with it.
  function loadImages() {
    content().querySelectorAll('img[data-src]').forEach(function (img) {
      fetch(img.dataset.src, { headers: headers() })
        .then(function (r) { return r.ok ? r.blob() : null; })
        .then(function (blob) { if (blob) img.src = URL.createObjectURL(blob); });
    });
  }

  function askForToken(why) {
    var main = content();
    if (!document.getElementById('token-form')) return location.reload();
    var error = document.getElementById('token-error');
    if (why) { error.textContent = why; error.hidden = false; }
    main.querySelector('#token').focus();
  }

  function refresh() {
    if (busy || (auth === 'bearer' && !token())) return;
    busy = true;
    fetch(contentUrl(), { headers: headers(), cache: 'no-store' })
      .then(function (r) {
        if (r.status === 401 && auth === 'bearer') {
          sessionStorage.removeItem(KEY);
          return askForToken('The server refused that token.');
        }
        return r.text().then(function (html) {
          content().innerHTML = html;
          loadImages();
          say(r.ok ? 'updated ' + new Date().toLocaleTimeString() : 'HTTP ' + r.status);
        });
      })
      .catch(function (e) { say('not updated: ' + e.message); })
      .finally(function () { busy = false; });
  }

  // Range links and the custom range form change the URL and fetch at once, without a reload.
  function go(url) {
    history.pushState(null, '', url);
    refresh();
  }

  document.addEventListener('click', function (e) {
    var link = e.target.closest('a[data-range]');
    if (!link) return;
    e.preventDefault();
    go(link.href);
  });

  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (form.id === 'token-form') {
      e.preventDefault();
      sessionStorage.setItem(KEY, form.querySelector('#token').value.trim());
      refresh();
    } else if (form.id === 'custom-range') {
      e.preventDefault();
      var url = new URL(location.href);
      url.searchParams.delete('range');
      url.searchParams.set('from', form.elements.from.value);
      url.searchParams.set('to', form.elements.to.value);
      go(url.pathname + url.search);
    }
  });

  window.addEventListener('popstate', refresh);

  if (auth === 'bearer' && token()) refresh();
  loadImages();
  if (every > 0) setInterval(refresh, every);
})();
