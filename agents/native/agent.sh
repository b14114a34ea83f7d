#!/bin/sh
# edgefarm native agent: for devices without Python (stock phones, bare boards). POSIX sh only: it runs under
# Android's mksh (with toybox), busybox ash and dash. It drives a runtime's own benchmark tool (llama-bench,
# benchmark_model, onnxruntime_perf_test) and ships what it saw as JSON lines; the controller parses the tool's
# output and builds the result record with the same statistics as the Python agent (harness/native/).
#
#   sh agent.sh probe [TOOL_PATH ...]
#   sh agent.sh run [--timeout-s S] [--poll-s S] [--artifact PATH [--sha256 HEX]] [--libs DIR] [--cpu-mask HEX]
#                   [--rlimit-kib N] [--phase NAME=GLOB ...] [--run-glob GLOB] [--keep-lines N] [--keep-stderr N] -- TOOL [ARGS ...]
#
# run: hashes the artifact (outside the timed region; a mismatch runs nothing), starts TOOL in the background,
# and until it exits reads its VmHWM from /proc/PID/status every --poll-s (the kernel's high-water mark of
# the tool's process: growth in the last interval before exit is not seen), its CPU ticks, and its stderr for
# lines matching the --phase globs (phase events, in the order given, at most one per line) and --run-glob
# (progress events). Past --timeout-s the tool
# is SIGKILLed. Then it prints native_exit (exit status, timed_out, memory figures, cgroup OOM kills), the
# tool's stdout lines and the tail of its stderr as native_line events, and native_end.
# Exit status: 0 when native_end was printed, 2 for usage errors (an `error` event says why).
# No command substitution or external command runs in the polling loop except `sleep`.

AGENT_VERSION=native-1

json_str() { # $1 -> JSON string (quoted) in JS; control characters dropped, tabs/newlines as spaces
  JS=$(printf '%s' "$1" | tr '\011\012\015' '   ' | tr -d '\000-\010\013-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
  JS="\"$JS\""
}

die() { json_str "$1"; echo "{\"event\": \"error\", \"message\": $JS}"; exit 2; }

uptime_cs() { # NOW: /proc/uptime in centiseconds (monotonic enough across a run; 10 ms resolution)
  read -r _u _rest </proc/uptime
  NOW=$(( ${_u%.*} * 100 + 1${_u#*.} - 100 ))
}

cs_str() { # $1 centiseconds -> R "S.CC"
  _s=$(( $1 / 100 )); _c=$(( $1 % 100 ))
  [ "$_c" -lt 10 ] && _c="0$_c"
  R="$_s.$_c"
}

tool_cpu() { # CPU_T: utime+stime ticks of pid $1 (left unchanged when it is gone)
  _l=
  { read -r _l; } 2>/dev/null <"/proc/$1/stat"
  [ -n "$_l" ] || return 1
  _l=${_l##*) }
  # shellcheck disable=SC2086
  set -- $_l
  CPU_T=$(( ${12} + ${13} ))
}

tool_mem() { # HWM (max seen), RSS, ANON, FILE in kB from /proc/$1/status
  { while read -r _k _v _unit; do
      case $_k in
        VmHWM:) [ "$_v" -gt "${HWM:-0}" ] && HWM=$_v ;;
        VmRSS:) RSS=$_v ;;
        RssAnon:) ANON=$_v ;;
        RssFile:) FILE=$_v ;;
      esac
    done; } 2>/dev/null <"/proc/$1/status"
}

cg_oom_kills() { # OOMK: OOM kills counted by this shell's memory cgroup (v1 oom_control, v2 memory.events)
  OOMK=null
  while IFS=: read -r _id _ctrl _path; do
    _f=
    case ",$_ctrl," in
      *,memory,*) _f="/sys/fs/cgroup/memory$_path/memory.oom_control" ;;
      ,,) _f="/sys/fs/cgroup$_path/memory.events" ;;
    esac
    if [ -z "$_f" ] || [ ! -r "$_f" ]; then continue; fi
    while read -r _k _v; do [ "$_k" = oom_kill ] && OOMK=$_v; done <"$_f"
  done 2>/dev/null </proc/self/cgroup
}

thermal_json() { # TJ: {"zoneN:type": C, ...} as agents/fingerprint.py writes it
  TJ=
  for _z in /sys/class/thermal/thermal_zone*; do
    [ -r "$_z/temp" ] || continue
    _t=; _ty=
    { read -r _t; } 2>/dev/null <"$_z/temp"
    { read -r _ty; } 2>/dev/null <"$_z/type"
    case $_t in ''|*[!0-9-]*) continue ;; esac
    _n=${_z##*/}; [ -n "$_ty" ] && _n="$_n:$_ty"
    if [ "$_t" -gt 200 ] || [ "$_t" -lt -200 ]; then
      _w=$(( _t / 1000 )); _f=$(( (_t < 0 ? -_t : _t) % 1000 ))
      while [ ${#_f} -lt 3 ]; do _f="0$_f"; done
      _t="$_w.$_f"
    fi
    json_str "$_n"
    TJ="${TJ:+$TJ, }$JS: $_t"
  done
  TJ="{$TJ}"
}

phase() { # $1 name: a phase event (t: monotonic s, wall: unix s, cpu: the tool's CPU s)
  uptime_cs
  tool_cpu "$PID" || true
  PHASE=$1
  cs_str "$NOW"; _t=$R
  cs_str "$(( CPU_T * 100 / HZ ))"
  echo "{\"event\": \"phase\", \"phase\": \"$1\", \"t\": $_t, \"wall\": $(date +%s), \"cpu\": $R}"
}

scan_stderr() { # new stderr lines of the tool: phases and progress
  while :; do
    _ln=
    if IFS= read -r _ln <&4; then
      _ln="$PARTIAL$_ln"; PARTIAL=
    else
      PARTIAL="$PARTIAL$_ln"
      break
    fi
    _i=0
    while [ "$_i" -lt "$NPH" ]; do
      _name=; _glob=
      eval "_name=\$PHN_$_i _glob=\$PHG_$_i"
      # shellcheck disable=SC2254
      case $_ln in $_glob) [ "$_i" -ge "$PHI" ] && { phase "$_name"; PHI=$(( _i + 1 )); break; } ;; esac
      _i=$(( _i + 1 ))
    done
    if [ -n "$RUNGLOB" ]; then
      # shellcheck disable=SC2254
      case $_ln in
        $RUNGLOB)
          RUNS=$(( RUNS + 1 ))
          [ "$PHASE" = measure ] || phase measure
          [ -z "$T_MEASURE" ] && T_MEASURE=$NOW
          uptime_cs
          cs_str "$(( NOW - T_MEASURE ))"
          echo "{\"event\": \"progress\", \"phase\": \"measure\", \"runs\": $(( RUNS - 1 )), \"elapsed_s\": $R, \"eta_s\": null}"
          ;;
      esac
    fi
  done
}

cmd_probe() {
  _os=Linux; _andr=
  if command -v getprop >/dev/null 2>&1 && [ -n "$(getprop ro.build.version.sdk 2>/dev/null)" ]; then
    _os=Android
    for _p in ro.product.manufacturer ro.product.model ro.product.device ro.board.platform ro.soc.manufacturer \
              ro.soc.model ro.hardware ro.build.version.release ro.build.version.sdk ro.build.fingerprint; do
      _v=$(getprop "$_p" 2>/dev/null)
      [ -n "$_v" ] || continue
      json_str "$_v"; _andr="${_andr:+$_andr, }\"$_p\": $JS"
    done
  fi
  _cpu=
  while IFS=: read -r _k _v; do
    case $_k in "model name"*|Hardware*|Processor*|"cpu model"*) [ -z "$_cpu" ] && _cpu=${_v# } ;; esac
  done </proc/cpuinfo
  _n=$(nproc 2>/dev/null) || _n=$(grep -c '^processor' /proc/cpuinfo)
  _mt=; _ma=
  while read -r _k _v _u; do
    case $_k in MemTotal:) _mt=$_v ;; MemAvailable:) _ma=$_v ;; esac
  done </proc/meminfo
  thermal_json
  fp="\"os\": \"$_os\", \"machine\": \"$(uname -m)\", \"agent_version\": \"$AGENT_VERSION\", \"cpu_count\": ${_n:-null}"
  json_str "$(uname -r)"; fp="$fp, \"kernel\": $JS"
  json_str "$(uname -v)"; fp="$fp, \"kernel_version\": $JS"
  json_str "$(uname -n)"; fp="$fp, \"hostname\": $JS"
  [ -n "$_cpu" ] && { json_str "$_cpu"; fp="$fp, \"cpu_model\": $JS"; }
  [ -n "$_mt" ] && fp="$fp, \"ram_total_mib\": $(( _mt / 1024 ))"
  [ -n "$_ma" ] && fp="$fp, \"ram_available_mib\": $(( _ma / 1024 ))"
  [ -n "$_andr" ] && fp="$fp, \"android\": {$_andr}"
  fp="$fp, \"thermal_c\": $TJ"
  tools=
  for t in "$@"; do
    json_str "$t"
    if [ -f "$t" ] && [ -x "$t" ]; then v=true; else v=false; fi
    tools="${tools:+$tools, }$JS: $v"
  done
  sh_name=$(readlink "/proc/$$/exe" 2>/dev/null); json_str "${sh_name:-sh}"
  echo "{\"event\": \"probe\", \"agent_version\": \"$AGENT_VERSION\", \"flavour\": \"native\", \"python\": null, \"shell\": $JS, \"fingerprint\": {$fp}, \"tools\": {$tools}}"
}

cmd_run() {
  TIMEOUT_CS=90000; POLL=0.1; ART=; SHA=; LIBS=; MASK=; RLIM=; NPH=0; RUNGLOB=; KEEP=2000; KEEP_ERR=80
  while [ $# -gt 0 ]; do
    case $1 in
      --timeout-s) _t=$2; case $_t in *.*) ;; *) _t="$_t.0" ;; esac
                   _f=${_t#*.}00; TIMEOUT_CS=$(( ${_t%.*} * 100 + 1${_f%"${_f#??}"} - 100 )); shift 2 ;;
      --poll-s) POLL=$2; shift 2 ;;
      --artifact) ART=$2; shift 2 ;;
      --sha256) SHA=$2; shift 2 ;;
      --libs) LIBS=$2; shift 2 ;;
      --cpu-mask) MASK=$2; shift 2 ;;
      --rlimit-kib) RLIM=$2; shift 2 ;;
      --phase) eval "PHN_$NPH=\${2%%=*} PHG_$NPH=\${2#*=}"; NPH=$(( NPH + 1 )); shift 2 ;;
      --run-glob) RUNGLOB=$2; shift 2 ;;
      --keep-lines) KEEP=$2; shift 2 ;;
      --keep-stderr) KEEP_ERR=$2; shift 2 ;;
      --) shift; break ;;
      *) die "native agent: unknown option '$1' (usage: agent.sh run [options] -- TOOL [ARGS ...])" ;;
    esac
  done
  [ $# -gt 0 ] || die "native agent: no tool to run (usage: agent.sh run [options] -- TOOL [ARGS ...])"
  sleep 0.01 2>/dev/null || POLL=1  # a sleep without fractions would turn the poll into a busy loop
  HZ=$(getconf CLK_TCK 2>/dev/null) || HZ=100
  case $HZ in ''|*[!0-9]*|0) HZ=100 ;; esac
  if [ -n "$MASK" ] && ! command -v taskset >/dev/null 2>&1; then
    die "native agent: pin_cpus needs taskset, which this device does not have"
  fi
  thermal_json; T_START_JSON=$TJ
  if [ -n "$ART" ]; then
    [ -r "$ART" ] || die "native agent: artifact $ART is not readable on the device"
    _h=$(sha256sum "$ART" 2>/dev/null) || _h=$(toybox sha256sum "$ART" 2>/dev/null) || _h=
    _h=${_h%% *}
    echo "{\"event\": \"native_hash\", \"artifact_sha256\": \"$_h\"}"
    if [ -n "$SHA" ] && [ "$_h" != "$SHA" ]; then
      echo "{\"event\": \"native_end\", \"sha_mismatch\": true}"
      return 0
    fi
  fi
  # Beside the agent (the work directory edgefarm writes anyway), else $TMPDIR: /tmp does not exist on Android.
  _base=${0%/*}; [ "$_base" = "$0" ] && _base=.
  OUT=$(mktemp -d "$_base/edgefarm-native.XXXXXX" 2>/dev/null) ||
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/edgefarm-native.XXXXXX") || die "native agent: cannot create a temporary directory"
  trap 'rm -rf "$OUT"' EXIT
  : >"$OUT/stderr"
  cg_oom_kills; OOM_BEFORE=$OOMK
  PID=; CPU_T=0; HWM=; RSS=; ANON=; FILE=; PHI=0; PARTIAL=; RUNS=0; T_MEASURE=; POLLS=0; TIMED_OUT=false
  trap 'trap - EXIT; kill -KILL "${PID:-$!}" 2>/dev/null; rm -rf "$OUT"; exit 143' TERM
  trap 'trap - EXIT; kill -KILL "${PID:-$!}" 2>/dev/null; rm -rf "$OUT"; exit 130' INT
  trap 'trap - EXIT; kill -KILL "${PID:-$!}" 2>/dev/null; rm -rf "$OUT"; exit 129' HUP
  (
    # shellcheck disable=SC3045  # ulimit -v: not POSIX, but dash, busybox ash and mksh all have it
    [ -n "$RLIM" ] && { ulimit -v "$RLIM" || exit 125; export MALLOC_ARENA_MAX=2; }
    [ -n "$LIBS" ] && { LD_LIBRARY_PATH="$LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; export LD_LIBRARY_PATH; }
    export GGML_NO_BACKTRACE=1
    if [ -n "$MASK" ]; then exec taskset "$MASK" "$@"; else exec "$@"; fi
  ) >"$OUT/stdout" 2>"$OUT/stderr" </dev/null &
  PID=$!
  uptime_cs; T0=$NOW; DEADLINE=$(( NOW + TIMEOUT_CS ))
  phase load
  exec 4<"$OUT/stderr"
  while kill -0 "$PID" 2>/dev/null; do
    tool_mem "$PID"
    tool_cpu "$PID"
    POLLS=$(( POLLS + 1 ))
    scan_stderr
    uptime_cs
    if [ "$NOW" -ge "$DEADLINE" ]; then
      TIMED_OUT=true
      kill -KILL "$PID" 2>/dev/null
      break
    fi
    sleep "$POLL"
  done
  wait "$PID"; RC=$?
  scan_stderr
  exec 4<&-
  phase "done"
  T_END=$NOW
  cg_oom_kills
  thermal_json
  cs_str "$(( T_END - T0 ))"; _wall=$R
  cs_str "$(( CPU_T * 100 / HZ ))"; _cpu=$R
  echo "{\"event\": \"native_exit\", \"rc\": $RC, \"timed_out\": $TIMED_OUT, \"pid\": $PID, \"wall_s\": $_wall, \"cpu_s\": $_cpu, \"hz\": $HZ, \"polls\": $POLLS, \"poll_s\": $POLL, \"vmhwm_kib\": ${HWM:-null}, \"vmrss_kib\": ${RSS:-null}, \"rss_anon_kib\": ${ANON:-null}, \"rss_file_kib\": ${FILE:-null}, \"cgroup_oom_kills_before\": $OOM_BEFORE, \"cgroup_oom_kills_after\": $OOMK, \"thermal\": {\"start\": $T_START_JSON, \"end\": $TJ}}"
  emit_lines stdout "$KEEP"
  emit_lines stderr "$KEEP_ERR"
  echo "{\"event\": \"native_end\"}"
}

emit_lines() { # $1 stream, $2 how many of its last lines (a last line without its newline too)
  { tail -n "$2" "$OUT/$1"; echo; } | tr '\011\015' '  ' | tr -d '\000-\010\013-\037' |
    sed -e '${/^$/d;}' -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e "s/^/{\"event\": \"native_line\", \"stream\": \"$1\", \"line\": \"/" -e 's/$/"}/'
}

case $1 in
  probe) shift; cmd_probe "$@" ;;
  run) shift; cmd_run "$@" ;;
  *) die "usage: agent.sh probe [TOOL ...] | run [options] -- TOOL [ARGS ...]" ;;
esac
