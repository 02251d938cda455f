"""--config.FIELD=VALUE overrides of a config on the command line, parsed by the field's type."""

import ast

import ml_collections

from lfw_siamese import config_check

_PREFIX = '--config.'


def split_overrides(argv: list[str]) -> tuple[list[tuple[str, str, str]], list[str]]:
  """(overrides as (flag as given, field, value), the other arguments) of a command line."""
  overrides, rest = [], []
  arguments = iter(argv)
  for argument in arguments:
    if not argument.startswith(_PREFIX):
      rest.append(argument)
      continue
    if '=' in argument:
      name, value = argument.split('=', 1)
    else:
      name, value = argument, next(arguments, None)
      if value is None:
        raise config_check.ConfigError(f'flag {argument}: expected a value')
      argument = f'{name}={value}'
    overrides.append((argument, name[len(_PREFIX):], value))
  return overrides, rest


def _parse(text: str, current):
  """The value `text` means for a field whose value is now `current`."""
  if isinstance(current, bool):
    lowered = text.lower()
    if lowered not in ('true', 'false', '1', '0'):
      raise ValueError(f'expected true or false, got {text!r}')
    return lowered in ('true', '1')
  if isinstance(current, int):
    return int(text)
  if isinstance(current, float):
    return float(text)
  if isinstance(current, (tuple, list)):
    value = ast.literal_eval(text)
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
  if isinstance(current, str):
    return text
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: list[tuple[str, str, str]]) -> ml_collections.ConfigDict:
  """The config with each override set; ConfigError naming the flag of the first that fails."""
  for flag, field, text in overrides:
    unknown = config_check.unknown_field_message(config, field)
    if unknown:
      raise config_check.ConfigError(f'{flag.split("=")[0]}: {unknown}')
    *parents, leaf = field.split('.')
    node = config
    for part in parents:
      node = node[part]
    try:
      node[leaf] = _parse(text, node[leaf])
    except (ValueError, TypeError, SyntaxError) as error:
      raise config_check.ConfigError(f'flag {flag}: {error}') from None
  return config
