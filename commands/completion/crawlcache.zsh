#compdef crawlcache
# zsh completion for crawlcache (urfave/cli's zsh_autocomplete, named).
# Load it with:  source <(crawlcache completion zsh)   (after compinit)

_crawlcache_zsh_autocomplete() {
  local -a opts
  local cur
  cur=${words[-1]}
  if [[ "$cur" == "-"* ]]; then
    opts=("${(@f)$(${words[@]:0:#words[@]-1} ${cur} --generate-bash-completion)}")
  else
    opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion)}")
  fi

  if [[ "${opts[1]}" != "" ]]; then
    _describe 'values' opts
  else
    _files
  fi
}

compdef _crawlcache_zsh_autocomplete crawlcache
