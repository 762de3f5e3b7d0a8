#!/usr/bin/env bash
# layers.sh - the folders' layering holds: a file includes only headers of its
# own folder and of the folders its folder may use (README, "Architecture").
# Programs (master, worker, ctl) sit on libraries; a library never includes
# from a program folder, and the table below has no circle.
cd "${SLUICE_TOP:-$(dirname "$0")/../..}" || exit 1

# folder: the folders it may use (libraries first, from the bottom up)
declare -A uses=(
  [util]=""
  [ipc]=""
  [shm]="util"
  [spool]="util ipc"
  [dns]="util"
  [smtp]="util dns"
  [config]="util shm dns smtp"
  [tls]="util dns smtp config"
  [cluster]="util shm config"
  [dlog]="util shm tls"
  [worker]="util ipc shm spool dns smtp config tls cluster dlog"
  [listener]="util ipc shm spool dns smtp config tls"
  [master]="util ipc shm spool dns smtp config tls cluster dlog worker listener"
  [ctl]="util ipc shm spool dns smtp config tls cluster dlog"
)
programs="master worker listener ctl"
n=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
bad() { n=$((n + 1)); echo "not ok $n - $*"; }

# 1. The table itself has no circle: every folder can be ordered so that each
#    uses only folders before it.
declare -A placed=()
order=()
for _ in "${!uses[@]}"; do
  for d in "${!uses[@]}"; do
    [ -n "${placed[$d]:-}" ] && continue
    ready=1
    for u in ${uses[$d]}; do [ -n "${placed[$u]:-}" ] || ready=0; done
    [ $ready -eq 1 ] && { placed[$d]=1; order+=("$d"); }
  done
done
if [ ${#order[@]} -eq ${#uses[@]} ]; then ok "the folders' uses form no circle (${order[*]})"
else bad "the folders' uses form a circle: only ${order[*]} can be ordered"; fi

# 2. No library may use a program folder.
for d in "${!uses[@]}"; do
  case " $programs " in *" $d "*) continue ;; esac
  for u in ${uses[$d]}; do
    case " $programs " in *" $u "*) bad "library $d uses program folder $u" ;; esac
  done
done

# 3. Every include of every file keeps to its folder's uses; a file with no
#    folder in the table is outside the layering and must not exist.
for f in $(git ls-files --cached --others --exclude-standard '*.c' '*.h'); do
  dir=${f%%/*}
  [ "$dir" = tests ] && continue
  if [ -z "${uses[$dir]+set}" ]; then bad "$f is in no folder of the layering"; continue; fi
  wrong=""
  while read -r inc; do
    case $inc in
      */*) d=${inc%%/*}
           [ "$d" = "$dir" ] && continue
           case " ${uses[$dir]} " in *" $d "*) ;; *) wrong="$wrong $inc" ;; esac ;;
      *)   [ -f "$dir/$inc" ] || wrong="$wrong $inc(not in $dir/)" ;;
    esac
  done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]+"([^"]+)".*/\1/p' "$f")
  if [ -z "$wrong" ]; then ok "$f keeps to what $dir/ may use"
  else bad "$f includes what $dir/ may not use:$wrong"; fi
done
