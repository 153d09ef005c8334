-- Profiles: one row per user, with the coach and virtue they prefer.
create table if not exists public.profiles (
  user_id uuid primary key,
  display_name text,
  preferred_virtue text check (preferred_virtue in ('wisdom', 'justice', 'courage', 'temperance')),
  preferred_persona text not null default 'marcus',
  timezone text not null default 'UTC',
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.profiles is 'Pocket Philosopher user profiles';
