// Magpie tracking script. Speaks Mautic's tracking protocol: works with Mautic's loader
// snippet (drains the `mt.q` queue) and `mt('send', 'pageview', params, {onload, onerror})`.
// Served with whole-line comments and indentation stripped; keep one statement per line.
(function (w, d) {
  'use strict';
  var name = w.MauticTrackingObject || 'mt';
  var script = d.currentScript;
  if (!script) {
    var all = d.getElementsByTagName('script');
    for (var i = 0; i < all.length; i++) {
      if (/\/mtc\.js(\?|$)/.test(all[i].src)) { script = all[i]; }
    }
  }
  var base = script && script.src ? script.src.replace(/\/mtc\.js([?#].*)?$/, '') : '__MAGPIE_BASE__';
  var eventUrl = base + '/mtc/event';
  var pixelUrl = base + '/mtracking.gif';
  var corsWorks = !!w.XMLHttpRequest;
  var has = function (o, k) { return Object.prototype.hasOwnProperty.call(o, k); };
  var load = function (k) { try { return w.localStorage.getItem(k); } catch (e) { return null; } };
  var save = function (k, v) { try { w.localStorage.setItem(k, v); } catch (e) {} };
  var readCookie = function (k) {
    var m = d.cookie.match(new RegExp('(?:^|; )' + k + '=([^;]*)'));
    return m ? decodeURIComponent(m[1]) : null;
  };
  var setCookie = function (k, v) {
    var secure = w.location.protocol === 'https:' ? '; Secure' : '';
    d.cookie = k + '=' + encodeURIComponent(v) + '; path=/; max-age=31536000; SameSite=Lax' + secure;
  };
  var deviceId = function () { return load('mautic_device_id') || readCookie('mautic_device_id'); };
  var serialize = function (o) {
    var out = [];
    for (var k in o) {
      if (!has(o, k) || o[k] === undefined || o[k] === null) { continue; }
      var v = o[k];
      if (typeof v === 'object') { v = Object.prototype.toString.call(v) === '[object Array]' ? v.join(',') : JSON.stringify(v); }
      out.push(encodeURIComponent(k) + '=' + encodeURIComponent(v));
    }
    return out.join('&');
  };
  var params = function (extra) {
    var p = {
      page_url: w.location.href,
      page_title: d.title,
      page_language: navigator.language || navigator.userLanguage || '',
      page_referrer: d.referrer || '',
      resolution: w.screen ? w.screen.width + 'x' + w.screen.height : '',
      timezone_offset: new Date().getTimezoneOffset(),
      platform: navigator.platform || ''
    };
    try { p.timezone = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) {}
    var id = deviceId();
    if (id) { p.mautic_device_id = id; }
    if (extra && typeof extra === 'object') {
      for (var k in extra) { if (has(extra, k)) { p[k] = extra[k]; } }
    }
    return p;
  };
  var remember = function (r) {
    if (!r || !r.device_id) { return; }
    save('mautic_device_id', r.device_id);
    setCookie('mautic_device_id', r.device_id);
    if (r.id) { save('mtc_id', String(r.id)); setCookie('mtc_id', String(r.id)); }
  };
  var call = function (cb, name, arg) {
    if (cb && typeof cb[name] === 'function') { try { cb[name](arg); } catch (e) {} }
  };
  var pixel = function (p, cb) {
    var img = new Image(1, 1);
    img.onload = function () { call(cb, 'onload', { image: true, params: p }); };
    img.onerror = function () { call(cb, 'onerror', { image: true, params: p }); };
    img.src = pixelUrl + '?' + serialize(p);
  };
  var pageview = function (extra, cb) {
    var p = params(extra);
    if (!corsWorks) { pixel(p, cb); return; }
    var x = new XMLHttpRequest();
    x.open('POST', eventUrl, true);
    x.withCredentials = true;
    x.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded');
    x.onreadystatechange = function () {
      if (x.readyState !== 4) { return; }
      if (x.status === 200) {
        var r = null;
        try { r = JSON.parse(x.responseText); } catch (e) {}
        remember(r);
        call(cb, 'onload', { response: r, params: p });
      } else {
        if (x.status === 0) { corsWorks = false; }
        pixel(p, cb);
      }
    };
    x.send(serialize(p));
  };
  // Forms posting to this Magpie carry the device id, so a submission identifies the
  // visitor even where the browser keeps no cookie for Magpie's site.
  var formAction = base + '/form/submit';
  var tagForm = function (f) {
    var id = deviceId();
    if (!id || !f || !f.getAttribute) { return; }
    var action = typeof f.action === 'string' ? f.action : (f.getAttribute('action') || '');
    if (action.indexOf(formAction) !== 0) { return; }
    var input = null;
    for (var i = 0; i < f.elements.length; i++) {
      if (f.elements[i].name === 'mauticform[mautic_device_id]') { input = f.elements[i]; }
    }
    if (!input) {
      input = d.createElement('input');
      input.type = 'hidden';
      input.name = 'mauticform[mautic_device_id]';
      f.appendChild(input);
    }
    input.value = id;
  };
  if (d.addEventListener) {
    d.addEventListener('submit', function (e) { tagForm(e.target); }, true);
  }
  var handle = function (args) {
    if (args && args[0] === 'send' && args[1] === 'pageview') { pageview(args[2], args[3]); }
  };
  var previous = w[name];
  var queued = previous && previous.q ? previous.q : [];
  var mt = function () { handle(arguments); };
  mt.q = { push: function (args) { handle(args); } };
  w[name] = mt;
  for (var j = 0; j < queued.length; j++) { handle(queued[j]); }
})(window, document);
