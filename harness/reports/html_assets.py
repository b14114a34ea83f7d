"""The HTML report's inline stylesheet and script (kept apart so html.py reads as the page's structure).

The script is allowed by its sha256 in the page's Content-Security-Policy; it reads no report strings
into HTML (only textContent / classList), so it cannot reintroduce markup.
"""

CSS = """
:root{--fail:#c62828;--fail-bg:#fdecea;--pass:#2e7d32;--pass-bg:#e8f5e9;--inc:#b26a00;--inc-bg:#fff4e0;
--err:#6a1b9a;--err-bg:#f3e5f5;--skip:#607d8b;--skip-bg:#eceff1;--ink:#1d2327;--mute:#5f6b73;--line:#d7dde1}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--ink);background:#f7f8f9}
main{padding:16px 24px}footer{padding:12px 24px;color:var(--mute);font-size:12px}
.banner{display:flex;gap:20px;align-items:center;padding:18px 24px;color:#fff}
.banner .verdict{font-size:34px;font-weight:800;letter-spacing:.04em}
.banner .summary{font-size:16px;font-weight:600}.banner .sub{opacity:.9;font-size:12.5px;word-break:break-all}
.banner.o-fail{background:var(--fail)}.banner.o-pass{background:var(--pass)}
.banner.o-inconclusive{background:var(--inc)}.banner.o-error{background:var(--err)}
.banner.o-skipped{background:var(--skip)}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;margin-right:4px;font-weight:600;font-size:12px}
.o-fail.chip,.badge.o-fail{background:var(--fail);color:#fff}.o-pass.chip,.badge.o-pass{background:var(--pass);color:#fff}
.o-inconclusive.chip,.badge.o-inconclusive{background:var(--inc);color:#fff}
.o-error.chip,.badge.o-error{background:var(--err);color:#fff}.o-skipped.chip,.badge.o-skipped{background:var(--skip);color:#fff}
.badge{display:inline-block;padding:1px 7px;border-radius:4px;font-size:11px;font-weight:700;letter-spacing:.03em}
.controls{margin:12px 0;color:var(--mute)}.controls .hint{margin-left:16px;font-size:12px}
.mwrap{overflow:auto;max-height:70vh;border:1px solid var(--line);background:#fff}
table.matrix{border-collapse:collapse}
.matrix th{position:sticky;top:0;background:#fff;padding:6px 10px;border-bottom:1px solid var(--line);
text-align:left;font-weight:600;white-space:nowrap}
.matrix tbody th{position:sticky;left:0;z-index:1}
.matrix td{padding:3px;border-bottom:1px solid #eef1f3}
.cell a{display:block;min-width:112px;padding:6px 10px;border-radius:6px;text-decoration:none;font-weight:700;
border:2px solid transparent}
.cell a small{display:block;font-weight:400;font-size:11px;opacity:.85;white-space:nowrap}
.cell.o-fail a{background:var(--fail-bg);color:var(--fail);border-color:var(--fail)}
.cell.o-pass a{background:var(--pass-bg);color:var(--pass)}
.cell.o-inconclusive a{background:var(--inc-bg);color:var(--inc);border-color:var(--inc)}
.cell.o-error a{background:var(--err-bg);color:var(--err);border-color:var(--err)}
.cell.o-skipped a{background:var(--skip-bg);color:var(--skip)}
.cell a.sel{outline:3px solid #1565c0;outline-offset:1px}.cell.none{color:#aab;text-align:center}
.hide-ok .cell.o-pass a,.hide-ok .cell.o-skipped a{opacity:.15}
.detail{background:#fff;border:1px solid var(--line);border-left:6px solid var(--skip);margin:16px 0;padding:4px 18px 14px}
.detail.o-fail{border-left-color:var(--fail)}.detail.o-pass{border-left-color:var(--pass)}
.detail.o-inconclusive{border-left-color:var(--inc)}.detail.o-error{border-left-color:var(--err)}
.js .detail{display:none}.js .detail.open{display:block}.detail:target{box-shadow:0 0 0 3px #90caf9}
.detail h2{font-size:18px;margin:12px 0 4px;word-break:break-all}.detail h3{font-size:14px;margin:14px 0 4px}
.meta,.note,.src{color:var(--mute)}.src{font-size:11.5px}.msg{font-family:ui-monospace,monospace;word-break:break-all}
.warn{background:var(--inc-bg);color:var(--inc);padding:4px 8px;border-radius:4px}
table.rules{border-collapse:collapse;width:100%;font-size:13px}
.rules th,.rules td{text-align:left;vertical-align:top;padding:5px 8px;border-bottom:1px solid #eef1f3}
.rules th{font-size:12px;color:var(--mute);font-weight:600}
.rules tr.o-fail td{background:#fff7f6}.rules .why{color:#36414a;max-width:520px}
.nb{font-size:11px;color:var(--mute)}.more{font-size:12px;color:var(--inc);font-weight:600}
.charts{display:flex;flex-wrap:wrap;gap:16px;margin-top:10px;flex:1 1 540px}
.cellbody{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start;margin-bottom:8px}.kcol{flex:0 0 auto}
.chart{background:#fbfcfc;border:1px solid #eef1f3;max-width:100%;height:auto}
.chart .bar{fill:#5c8fd6}.chart .bar-base{fill:#b0bec5}.chart .bar-oom{fill:var(--fail)}
.chart .base{fill:none;stroke:#37474f;stroke-width:1.3}.chart .axis{stroke:#90a4ae}
.chart .mark{stroke:#1565c0;stroke-dasharray:2 2}.chart .mark-base{stroke:#607d8b;stroke-dasharray:5 3}
.chart .mark-budget{stroke:var(--fail);stroke-width:2;stroke-dasharray:6 3}
.chart .lbl{font-size:11px;fill:#263238}.chart .tick{font-size:10px;fill:#607d8b}
table.prov{border-collapse:collapse;font-size:12.5px}
.prov th{color:var(--mute);font-weight:500;text-align:left;padding:2px 14px 2px 0;white-space:nowrap;vertical-align:top}
.prov td{font-family:ui-monospace,monospace;word-break:break-all;padding:2px 0}
table.keyfig{border-collapse:collapse;font-size:12.5px;margin:4px 0}
.keyfig th,.keyfig td{text-align:left;padding:2px 12px 2px 0;border-bottom:1px solid #eef1f3;vertical-align:top}
.keyfig th{color:var(--mute);font-weight:500;white-space:nowrap}.keyfig td.why,.keyfig-all td{color:#36414a}
.keyfigs{margin:10px 0 14px}.keyfigs h2{font-size:15px;margin:4px 0}
.kwrap{overflow:auto;max-height:60vh;border:1px solid var(--line);background:#fff}
table.keyfig-all{border-collapse:collapse;font-size:12px}
.keyfig-all th{position:sticky;top:0;background:#fff;text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);
white-space:nowrap}.keyfig-all td{padding:3px 8px;border-bottom:1px solid #eef1f3;white-space:nowrap}
.controls button{font:inherit;font-size:12px;padding:1px 8px;margin-left:10px}
figure.fig{margin:0;max-width:520px}figure.fig figcaption{font-size:11.5px;color:var(--mute);padding:2px 4px}
.chart .grid{stroke:#eef1f3}.chart .axis-label{font-size:11px;fill:#37474f}
.chart .cdf{fill:none;stroke:#1565c0;stroke-width:1.8}.chart .cdf-base{fill:none;stroke:#78909c;stroke-width:1.4;
stroke-dasharray:4 2}.chart .hwm{stroke:#1565c0;stroke-width:2.5}.chart .dot{fill:#1565c0}.chart .dot-oom{fill:var(--fail)}
.chart .mark-ram{stroke:#455a64;stroke-dasharray:1 3;stroke-width:1.5}
.chart .phase{fill:#f1f4f6;stroke:#fff}.chart .ph-load{fill:#e3f2fd}.chart .ph-measure{fill:#e8f5e9}
.chart .ph-first{fill:#fff8e1}.chart .ph-warm{fill:#f3e5f5}
.chart .rate-pp,.chart .rate-tg{fill:none;stroke-width:1.5}.chart .rate-pp{stroke:#6a1b9a}.chart .rate-tg{stroke:#2e7d32}
.chart .rate-pp-dot{fill:#6a1b9a}.chart .rate-tg-dot{fill:#2e7d32}
.chart .temp{fill:none;stroke:#d84315;stroke-width:1.6}.chart .freq{fill:none;stroke:#1565c0;stroke-width:1.6}
.chart .throttled{fill:#ffcdd2;opacity:.6}.chart .front{fill:none;stroke:#2e7d32;stroke-width:1.5}
.chart .pt{fill:#90a4ae}.chart .trend{fill:none;stroke:#1565c0;stroke-width:1.4}.chart .ci{stroke:#90a4ae}.chart .pt-front{fill:#2e7d32}
ul.kpis{margin:4px 0;padding-left:18px}
.worst{margin:10px 0 14px;padding:8px 14px;background:#fff;border:1px solid var(--line)}
.worst h2{font-size:14px;margin:2px 0 6px}.worst ol{margin:0;padding-left:22px}.worst li{margin:2px 0}
.worst a{color:inherit}
"""

JS = """
(function(){
  var root=document.documentElement; root.classList.add('js');
  function open(id, scroll){
    var d=document.getElementById(id); if(!d){return;}
    d.classList.add('open');
    document.querySelectorAll('.cell a.sel').forEach(function(a){a.classList.remove('sel');});
    var a=document.querySelector('.cell a[href="#'+id+'"]'); if(a){a.classList.add('sel');}
    if(scroll){d.scrollIntoView({behavior:'smooth',block:'start'});}
  }
  document.querySelectorAll('a[data-cell]').forEach(function(a){a.addEventListener('click',function(ev){
    ev.preventDefault(); var id=a.getAttribute('href').slice(1); open(id,true);
    if(history.replaceState){history.replaceState(null,'','#'+id);}
  });});
  function all(on){document.querySelectorAll('.detail').forEach(function(d){d.classList.toggle('open',on);});}
  var ex=document.getElementById('expand-all'), co=document.getElementById('collapse-all');
  if(ex){ex.addEventListener('click',function(){all(true);});}
  if(co){co.addEventListener('click',function(){all(false);});}
  var box=document.getElementById('only-bad');
  if(box){box.addEventListener('change',function(){root.classList.toggle('hide-ok',box.checked);});}
  var first=location.hash.slice(1);
  if(first&&document.getElementById(first)){open(first,false);}
  else{
    /* failing / inconclusive cells are open from the server; with none, open the first cell */
    var bad=document.querySelector('.detail.open');
    var hit=document.querySelector('.cell a[data-cell]');
    if(bad){var a=document.querySelector('.cell a[href="#'+bad.id+'"]'); if(a){a.classList.add('sel');}}
    else if(hit){open(hit.getAttribute('href').slice(1),false);}
  }
  root.setAttribute('data-ready','1');
})();
"""
