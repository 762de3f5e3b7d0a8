# bash completion for sluicectl (installed by `make install` into
# share/bash-completion/completions/sluicectl).  Subcommands, their options, the
# config's option names for `config eval`, and queue ids for the queue commands.

_sluicectl_cfg() {
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    [ "${COMP_WORDS[i]}" = -c ] && { echo "-c ${COMP_WORDS[i + 1]}"; return; }
  done
}

_sluicectl() {
  local cur prev sub i cfg
  cur=${COMP_WORDS[COMP_CWORD]}
  prev=${COMP_WORDS[COMP_CWORD - 1]}
  local subs="config counters metrics probe inject queue delete bounce hold release flush
    domain status reload resolve tls"
  sub=
  for ((i = 1; i < COMP_CWORD; i++)); do
    case ${COMP_WORDS[i]} in
      -c) i=$((i + 1)) ;;
      -*) ;;
      *) sub=${COMP_WORDS[i]}; break ;;
    esac
  done
  if [ "$prev" = -c ]; then
    mapfile -t COMPREPLY < <(compgen -f -- "$cur")
    return
  fi
  if [ -z "$sub" ]; then
    mapfile -t COMPREPLY < <(compgen -W "$subs -c --help --version" -- "$cur")
    return
  fi
  cfg=$(_sluicectl_cfg)
  local opts=
  case $sub in
    config)
      if [ "$prev" = config ]; then
        opts="check show eval"
      elif [[ $cur != -* ]] && [ "${COMP_WORDS[i + 1]}" = eval ]; then
        # shellcheck disable=SC2086 # cfg is "-c FILE" or nothing
        opts=$(sluicectl $cfg config show 2>/dev/null | sed -n 's/ = .*//p' | sort -u)
      else
        opts="--strict -n --explain --chain --binding --binding-group --domain --host"
      fi ;;
    counters) opts="--json --watch --count --shm --sort --scope --nonzero --match" ;;
    metrics) opts="--listen --shm" ;;
    probe) opts="--binding --domain --mx --hold" ;;
    inject) opts="--binding --binding-group -f" ;;
    queue) opts="--json --summary --domain --binding" ;;
    delete | hold | release | flush) opts="--domain --binding" ;;
    bounce) opts="--domain --binding --reason" ;;
    domain) opts="--binding --json --timeout" ;;
    resolve) opts="--binding --timeout" ;;
    tls) opts="--binding --json" ;;
  esac
  case $sub in
    queue | delete | bounce | hold | release | flush)
      if [[ $cur != -* ]] && [[ $prev != --* ]]; then
        # shellcheck disable=SC2086
        opts="$opts $(sluicectl $cfg queue --json 2>/dev/null |
          grep -o '"id":"[0-9A-Za-z]*"' | cut -d'"' -f4)"
      fi ;;
  esac
  mapfile -t COMPREPLY < <(compgen -W "$opts --help" -- "$cur")
}
complete -F _sluicectl sluicectl
