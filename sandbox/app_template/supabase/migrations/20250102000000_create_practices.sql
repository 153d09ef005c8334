-- Practices: the daily habits a user commits to, grouped by virtue.
create table if not exists public.practices (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (user_id) on delete cascade,
  name text not null,
  virtue text not null,
  frequency text not null default 'daily',
  is_active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create index if not exists practices_user_id_idx on public.practices (user_id);
